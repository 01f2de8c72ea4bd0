"""retrace.aio.Client: the asyncio client (grpc.aio), with the synchronous Client's methods as
coroutines and index() as an async iterator.

Thread-safety: use a Client from the event loop that created it.

    async with retrace.aio.Client("127.0.0.1:50051") as client:
        result = await client.search("art", text="a dog", top_k=5)
        async for r in client.index("art", paths):
            ...
"""

import asyncio

import grpc
import grpc.aio

from . import _requests as rq
from . import types as t
from ._errors import RetraceError, from_rpc_error


class Client:
    """As retrace.Client (same arguments, results and errors), for asyncio."""

    def __init__(self, target, token=None, tls=False, root_certs=None, timeout=60.0,
                 options=None):
        rq.check_name(target, "target")
        creds = rq.credentials(tls, root_certs)
        opts = rq.CHANNEL_OPTIONS + list(options or [])
        self._channel = (grpc.aio.secure_channel(target, creds, opts) if creds
                         else grpc.aio.insecure_channel(target, opts))
        self._stub = rq.pb_grpc.RetraceStub(self._channel)
        self._metadata = rq.metadata(token)
        self._timeout = timeout

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _call(self, method, request):
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def health(self, service=""):
        check = self._channel.unary_unary(rq.HEALTH_METHOD)
        try:
            response = await check(rq.health_request(service), timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return rq.health_status(response)

    async def caption(self, *images, max_new_tokens=None, num_beams=None, length_penalty=None,
                      min_new_tokens=None, no_repeat_ngram_size=None, repetition_penalty=None,
                      prompt=None):
        request = rq.caption_request(images, dict(
            max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
            min_new_tokens=min_new_tokens, no_repeat_ngram_size=no_repeat_ngram_size,
            repetition_penalty=repetition_penalty, prompt=prompt))
        response = await self._call(self._stub.Caption, request)
        return [t.CaptionResult(t.status_code(r.status.code), r.status.message, r.caption)
                for r in response.results]

    async def create_collection(self, name, shards=None, caption_index=None, image_index=None):
        request = rq.collection_request(name, shards, caption_index, image_index)
        return t.collection_from_proto(await self._call(self._stub.CreateCollection, request))

    async def list_collections(self, after=None):
        request = rq.pb.ListCollectionsRequest(min_position=rq.check_position(after))
        response = await self._call(self._stub.ListCollections, request)
        return [t.collection_from_proto(c) for c in response.collections]

    async def describe_collection(self, name, after=None):
        request = rq.pb.DescribeCollectionRequest(name=rq.check_name(name, "name"),
                                                  min_position=rq.check_position(after))
        return t.collection_from_proto(await self._call(self._stub.DescribeCollection, request))

    async def drop_collection(self, name):
        request = rq.pb.DropCollectionRequest(name=rq.check_name(name, "name"))
        return (await self._call(self._stub.DropCollection, request)).position

    async def cluster_status(self):
        return await self._call(self._stub.GetClusterStatus, rq.pb.GetClusterStatusRequest())

    def index(self, collection, items, batch=32, in_flight=4, timeout=None, near_duplicate=None,
              near_duplicate_threshold=None):
        """An IndexStream: `async for result in stream` gives one IndexResult per item, in
        order; stream.position is the highest store position answered. See retrace.Client."""
        check = rq.near_duplicate_check(near_duplicate, near_duplicate_threshold)
        requests = rq.index_requests(collection, items, batch, check)
        if not isinstance(in_flight, int) or in_flight < 1:
            raise rq.InvalidArgument("in_flight: at least 1, got %r" % (in_flight,))
        return IndexStream(self._stub, requests, self._metadata, timeout, in_flight)

    async def search(self, collection, image=None, text=None, embedding=None, mode="caption",
                     top_k=10, caption=None, candidates=None, beta=None, w1=None, w2=None,
                     no_rerank=False, rrf_k=None, after=None, item_id=None, include_self=False,
                     filter=None, min_score=None, lexical=False, allow_partial=False):
        """See retrace.Client.search."""
        request = rq.search_request(collection, image, text, embedding, mode, top_k, caption,
                                    candidates, beta, w1, w2, no_rerank, rrf_k, after, item_id,
                                    include_self, filter, min_score, lexical,
                                    allow_partial)
        return t.search_result_from_proto(await self._call(self._stub.Search, request))

    async def search_batch(self, queries):
        """See retrace.Client.search_batch."""
        request = rq.search_batch_request(queries)
        return t.search_batch_results_from_proto(
            await self._call(self._stub.SearchBatch, request))

    async def get(self, collection, ids, embeddings=False, after=None):
        request = rq.get_request(collection, ids, embeddings, after)
        return t.get_results_from_proto(request.ids, await self._call(self._stub.Get, request))

    async def delete(self, collection, ids=None, filter=None, dry_run=False):
        """See retrace.Client.delete."""
        request = rq.delete_request(collection, ids, filter, dry_run)
        return t.delete_result_from_proto(await self._call(self._stub.Delete, request))

    async def items(self, collection, filter=None, page_size=500, embeddings=False, after=None):
        """See retrace.Client.items (an async generator)."""
        request = rq.list_request(collection, filter, page_size, embeddings, after)
        while True:
            page = await self._call(self._stub.List, request)
            for s in page.items:
                yield t.stored_item_from_proto(s)
            if not page.next_cursor:
                return
            request.cursor = page.next_cursor


class IndexStream:
    """Client.index()'s results: writes up to `in_flight` requests ahead of their answers."""

    def __init__(self, stub, requests, metadata, timeout, in_flight):
        self.position = 0
        self._stub, self._requests = stub, requests
        self._metadata, self._timeout, self._in_flight = metadata, timeout, in_flight
        self._results = self._iterate()

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._results.__anext__()

    async def aclose(self):
        await self._results.aclose()

    async def _status_error(self, call):
        return RetraceError(await call.code(), await call.details() or "")

    async def _iterate(self):
        call = self._stub.Index(timeout=self._timeout, metadata=self._metadata)
        pending, writing, error = 0, True, None
        try:
            while True:
                while writing and pending < self._in_flight:
                    try:
                        request = next(self._requests)
                    except StopIteration:
                        request = None
                    except RetraceError as e:  # an unreadable item: answered items come first
                        request, error = None, e
                    if request is None:
                        writing = False
                        await call.done_writing()
                        break
                    await call.write(request)
                    pending += 1
                if pending == 0:
                    break
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise await self._status_error(call)
                pending -= 1
                self.position = max(self.position, response.position)
                for r in response.results:
                    yield t.index_result_from_proto(r, response.position)
            if error is not None:
                raise error
            if await call.code() != grpc.StatusCode.OK:
                raise await self._status_error(call)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        except asyncio.InvalidStateError:  # a write after the server ended the call
            raise await self._status_error(call) from None
        finally:
            call.cancel()
