"""Client: the synchronous retrace client over one gRPC channel.

Thread-safety: a Client may be shared by threads (gRPC channels are); an IndexStream belongs to
the thread iterating it.

    with retrace.Client("127.0.0.1:50051") as client:
        hits = client.search("art", image="render.png", mode="provenance", caption=prompt)
"""

import sys
import threading

import grpc

from . import _requests as rq
from . import types as t
from ._errors import from_rpc_error


class Client:
    """A connection to a retrace server (or a comma-free gRPC target such as dns:///host:port).

    token: a bearer token sent with every call; tls: speak TLS with the system's roots, or
    root_certs (PEM bytes or a path; giving them implies tls); timeout: each unary call's
    deadline in seconds (None: the server's default, 60 s); index() takes its own.
    Every method raises RetraceError (InvalidArgument for a bad argument, before sending).
    """

    def __init__(self, target, token=None, tls=False, root_certs=None, timeout=60.0,
                 options=None):
        rq.check_name(target, "target")
        creds = rq.credentials(tls, root_certs)
        opts = rq.CHANNEL_OPTIONS + list(options or [])
        self._channel = (grpc.secure_channel(target, creds, opts) if creds
                         else grpc.insecure_channel(target, opts))
        self._stub = rq.pb_grpc.RetraceStub(self._channel)
        self._metadata = rq.metadata(token)
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # --- health and captions ------------------------------------------------------------------

    def health(self, service=""):
        """The gRPC health status: "SERVING", "NOT_SERVING", ... (open without a token)."""
        check = self._channel.unary_unary(rq.HEALTH_METHOD)
        try:
            response = check(rq.health_request(service), timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return rq.health_status(response)

    def caption(self, *images, max_new_tokens=None, num_beams=None, length_penalty=None,
                min_new_tokens=None, no_repeat_ngram_size=None, repetition_penalty=None,
                prompt=None):
        """One CaptionResult per image (paths or bytes; or one list of them), in order; a bad
        image fails only its own result. Options left None take the server's defaults."""
        request = rq.caption_request(images, dict(
            max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
            min_new_tokens=min_new_tokens, no_repeat_ngram_size=no_repeat_ngram_size,
            repetition_penalty=repetition_penalty, prompt=prompt))
        response = self._call(self._stub.Caption, request)
        return [t.CaptionResult(t.status_code(r.status.code), r.status.message, r.caption)
                for r in response.results]

    # --- collections --------------------------------------------------------------------------

    def create_collection(self, name, shards=None, caption_index=None, image_index=None):
        """Creates a collection; ALREADY_EXISTS when the name is taken."""
        request = rq.collection_request(name, shards, caption_index, image_index)
        return t.collection_from_proto(self._call(self._stub.CreateCollection, request))

    def list_collections(self, after=None):
        request = rq.pb.ListCollectionsRequest(min_position=rq.check_position(after))
        response = self._call(self._stub.ListCollections, request)
        return [t.collection_from_proto(c) for c in response.collections]

    def describe_collection(self, name, after=None):
        request = rq.pb.DescribeCollectionRequest(name=rq.check_name(name, "name"),
                                                  min_position=rq.check_position(after))
        return t.collection_from_proto(self._call(self._stub.DescribeCollection, request))

    def drop_collection(self, name):
        """Drops a collection and its items; returns the drop's store position."""
        request = rq.pb.DropCollectionRequest(name=rq.check_name(name, "name"))
        return self._call(self._stub.DropCollection, request).position

    def cluster_status(self):
        """The replicas sharing the store (the ClusterStatus protobuf message as is)."""
        return self._call(self._stub.GetClusterStatus, rq.pb.GetClusterStatusRequest())

    # --- items --------------------------------------------------------------------------------

    def index(self, collection, items, batch=32, progress=False, in_flight=4, timeout=None,
              near_duplicate=None, near_duplicate_threshold=None):
        """Indexes items over one Index stream: an IndexStream, iterated for one IndexResult per
        item in order (a failed item fails alone: check result.ok). Items are Item objects,
        paths, (id, image[, caption[, attributes]]) tuples or dicts, read lazily; `batch` items
        go in each request, at most `in_flight` requests await their answers. After iterating,
        stream.position is the highest store position answered: read with after=position.
        progress=True writes a count of items to stderr; timeout: the whole stream's deadline in
        seconds (None: none). near_duplicate: "report" names each new item's most similar stored
        item (at or above near_duplicate_threshold, default the server's 0.95) in its result,
        "skip" also leaves such an item unstored (ALREADY_EXISTS, result.skipped).
        Stream-level failures (NOT_FOUND for the collection, ...) raise RetraceError while
        iterating."""
        check = rq.near_duplicate_check(near_duplicate, near_duplicate_threshold)
        requests = rq.index_requests(collection, items, batch, check)
        if not isinstance(in_flight, int) or in_flight < 1:
            raise rq.InvalidArgument("in_flight: at least 1, got %r" % (in_flight,))
        total = len(items) if hasattr(items, "__len__") else None
        return IndexStream(self._stub, requests, self._metadata, timeout, in_flight,
                           progress and Progress(total))

    def search(self, collection, image=None, text=None, embedding=None, mode="caption", top_k=10,
               caption=None, candidates=None, beta=None, w1=None, w2=None, no_rerank=False,
               rrf_k=None, after=None, item_id=None, include_self=False, filter=None,
               min_score=None, lexical=False, allow_partial=False):
        """The top_k hits for exactly one query: image (path or bytes), text, embedding (a
        sequence of floats) or item_id (a stored item of the collection, searched with its
        stored embeddings and caption; left out of the hits unless include_self). mode:
        "caption" (Caption-Matching), "provenance", "hybrid" or "caption_text"; caption: Q_t,
        the query's caption (e.g. the generation prompt) for re-ranking;
        candidates/beta/w1/w2/no_rerank: ProvenanceOptions; rrf_k, lexical: HybridOptions;
        filter: rank only items that satisfy it (a retrace_pb2.Filter or a dict in its JSON
        form, see README "Filters"); min_score: cut hits below it; after: answer once the server
        holds this store position; allow_partial: through a sharded cluster's frontend, answer
        without shard groups that are down (SearchResult.missing_shards lists their shards)
        rather than fail. Returns a SearchResult (iterable of Hit)."""
        request = rq.search_request(collection, image, text, embedding, mode, top_k, caption,
                                    candidates, beta, w1, w2, no_rerank, rrf_k, after, item_id,
                                    include_self, filter, min_score, lexical,
                                    allow_partial)
        return t.search_result_from_proto(self._call(self._stub.Search, request))

    def search_batch(self, queries):
        """Several searches in one call (SearchBatch, for bulk audits): `queries` are dicts of
        search()'s arguments, each with its "collection". Returns one SearchBatchResult per
        query, in order; a bad query fails only its own (check result.ok)."""
        request = rq.search_batch_request(queries)
        return t.search_batch_results_from_proto(self._call(self._stub.SearchBatch, request))

    def get(self, collection, ids, embeddings=False, after=None):
        """One GetResult per id, in order (NOT_FOUND per id that is not stored)."""
        request = rq.get_request(collection, ids, embeddings, after)
        return t.get_results_from_proto(request.ids, self._call(self._stub.Get, request))

    def delete(self, collection, ids=None, filter=None, dry_run=False):
        """Deletes by id (a DeleteResult with the deletion's position and one result per id), or
        every item `filter` matches (matched and deleted counts; dry_run only counts). A delete
        by filter that fails part way raises with the count done; calling again finishes it."""
        request = rq.delete_request(collection, ids, filter, dry_run)
        return t.delete_result_from_proto(self._call(self._stub.Delete, request))

    def items(self, collection, filter=None, page_size=500, embeddings=False, after=None):
        """Every stored item (StoredItem), in id order, a List page at a time; with `filter`,
        only those that satisfy it. Each item that exists throughout is yielded exactly once,
        whatever is written meanwhile."""
        request = rq.list_request(collection, filter, page_size, embeddings, after)
        while True:
            page = self._call(self._stub.List, request)
            for s in page.items:
                yield t.stored_item_from_proto(s)
            if not page.next_cursor:
                return
            request.cursor = page.next_cursor


class Progress:
    """A one-line item count on stderr ("indexed 120/500 items, 2 failed")."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr

    def update(self, result):
        self.done += 1
        self.failed += not result.ok
        of = "/%d" % self.total if self.total is not None else ""
        self.stream.write("\rindexed %d%s items, %d failed" % (self.done, of, self.failed))
        self.stream.flush()

    def finish(self):
        self.stream.write("\n")
        self.stream.flush()


class IndexStream:
    """The results of Client.index(): an iterator of IndexResult, one per item, in order.

    The requests are sent from gRPC's thread as the server answers: a semaphore lets at most
    `in_flight` of them wait for their responses, so a large input is never read ahead of what
    the server acknowledges. Stopping early (break, close()) cancels the stream; the items whose
    results were not seen may or may not be stored.
    """

    def __init__(self, stub, requests, metadata, timeout, in_flight, progress):
        self.position = 0  # the highest store position answered so far
        self._requests = requests
        self._slots = threading.Semaphore(in_flight)
        self._cancelled = threading.Event()
        self._error = None  # an exception building the requests (an unreadable image)
        self._progress = progress
        self._call = stub.Index(self._paced(), timeout=timeout, metadata=metadata)
        self._results = self._iterate()

    def _paced(self):
        # Runs on gRPC's thread: an exception here would only cancel the call, so a bad item
        # ends the requests and is raised to the caller after the results before it.
        try:
            for request in self._requests:
                while not self._slots.acquire(timeout=0.1):
                    if self._cancelled.is_set():
                        return
                if self._cancelled.is_set():
                    return
                yield request
        except Exception as e:  # noqa: BLE001 - handed to the iterating thread
            self._error = e

    def _iterate(self):
        try:
            for response in self._call:
                self._slots.release()
                self.position = max(self.position, response.position)
                for r in response.results:
                    result = t.index_result_from_proto(r, response.position)
                    if self._progress:
                        self._progress.update(result)
                    yield result
            if self._error is not None:
                raise self._error
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            self._cancelled.set()
            self._call.cancel()
            if self._progress:
                self._progress.finish()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._results)

    def close(self):
        """Stops the stream (cancelling what is in flight)."""
        self._cancelled.set()
        self._results.close()
        self._call.cancel()
