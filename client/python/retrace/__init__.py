"""retrace: the Python client of the retrace image-retrieval service (gRPC API v1).

    import retrace
    with retrace.Client("127.0.0.1:50051", token=os.environ.get("RETRACE_TOKEN")) as client:
        client.create_collection("art")
        stream = client.index("art", ["a.jpg", "b.jpg"])
        failed = [r for r in stream if not r.ok]
        for hit in client.search("art", text="a dog", after=stream.position):
            print(hit.id, hit.score, hit.caption)

retrace.aio.Client is the asyncio variant. Failures raise RetraceError (.code is a
grpc.StatusCode, .message the server's text); bad arguments raise InvalidArgument first.
"""

from ._errors import InvalidArgument, RetraceError
from . import aio
from .client import Client, IndexStream
from .types import (CaptionResult, Collection, DeleteResult, GetResult, Hit, HybridParts,
                    IndexResult, Item, ProvenanceParts, SearchBatchResult, SearchResult,
                    StoredItem)

__version__ = "0.1.0"

__all__ = [
    "CaptionResult", "Client", "Collection", "DeleteResult", "GetResult", "Hit", "HybridParts",
    "IndexResult", "IndexStream", "InvalidArgument", "Item", "ProvenanceParts", "RetraceError",
    "SearchBatchResult", "SearchResult", "StoredItem",
]
