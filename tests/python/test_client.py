"""The Python client (retrace.Client, retrace.aio.Client) against the real server."""

import asyncio
import hashlib
import math
import os
import shutil
import subprocess
import sys

import grpc
import pytest

import retrace
import retrace.aio
from conftest import CLASSES, REPO, fixture_image, start_server, stop_server


def test_health(client):
    assert client.health() == "SERVING"


def test_caption(client):
    results = client.caption(fixture_image("photo", "dog"), fixture_image("sketch", "cat"),
                             b"not an image")
    assert [r.ok for r in results] == [True, True, False]
    assert results[0].caption == "a picture of a dog"
    assert results[1].caption == "a picture of a cat"
    assert results[2].code == grpc.StatusCode.INVALID_ARGUMENT
    assert "image" in results[2].message


def test_collections(client):
    created = client.create_collection("scratch", shards=2)
    assert created.name == "scratch" and created.shards == 2
    assert created.item_count == 0 and created.caption_dim > 0
    assert created.image_dim > created.caption_dim  # with the oracle image encoder
    assert "scratch" in [c.name for c in client.list_collections()]
    described = client.describe_collection("scratch", after=created.created_position)
    assert described.name == "scratch" and described.applied_position >= created.created_position
    with pytest.raises(retrace.RetraceError) as e:
        client.create_collection("scratch")
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    position = client.drop_collection("scratch")
    assert position > created.created_position
    with pytest.raises(retrace.RetraceError) as e:
        client.describe_collection("scratch")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert "scratch" in e.value.message


def test_index_results_and_positions(client, gallery):
    described = client.describe_collection("gallery", after=gallery)
    assert described.item_count == len(CLASSES)
    # The odd classes were captioned by the server (the oracle captioner knows the class).
    got = client.get("gallery", ["photo-car", "photo-bird"], after=gallery)
    assert [g.item.caption for g in got] == ["a picture of a car", "a picture of a bird"]
    # The same items again: stored already, nothing written.
    stream = client.index("gallery", [("photo-cat", fixture_image("photo", "cat"),
                                       "a picture of a cat", {"class": "cat"})])
    results = list(stream)
    assert len(results) == 1 and results[0].ok and results[0].unchanged
    assert 0 < stream.position <= gallery


def test_index_bad_item_fails_alone(client, gallery):
    client.create_collection("mixed")
    items = [retrace.Item("good", fixture_image("painting", "horse")),
             retrace.Item("bad", b"\x89PNG truncated"),
             {"id": "also-good", "image": fixture_image("clipart", "tree"), "caption": "a tree"}]
    stream = client.index("mixed", items, batch=1, in_flight=2, progress=True)
    results = list(stream)
    assert [(r.id, r.ok) for r in results] == [("good", True), ("bad", False),
                                               ("also-good", True)]
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT
    assert "image" in results[1].message
    assert stream.position == max(r.position for r in results)
    client.drop_collection("mixed")


def test_index_unknown_collection_raises_not_found(client):
    with pytest.raises(retrace.RetraceError) as e:
        list(client.index("no-such-collection", [fixture_image("photo", "dog")]))
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_index_unreadable_path_raises_after_earlier_results(client, gallery):
    stream = client.index("gallery", [("photo-cat", fixture_image("photo", "cat"),
                                       "a picture of a cat", {"class": "cat"}),
                                      ("missing", "/nonexistent/image.png")], batch=1)
    first = next(stream)
    assert first.id == "photo-cat" and first.ok
    with pytest.raises(retrace.InvalidArgument, match=r"items\[1\].image"):
        next(stream)


def test_search_by_text_and_image(client, gallery):
    result = client.search("gallery", text="a picture of a horse", top_k=3, after=gallery)
    assert result.hits[0].id == "photo-horse"
    assert result.hits[0].attributes == {"class": "horse"}
    assert result.hits[0].provenance is None and len(result) == 3
    assert result.applied_position >= gallery and not result.stale
    assert result.missing_shards == []
    # One process holds every shard: allow_partial changes nothing there.
    partial = client.search("gallery", text="a picture of a horse", top_k=3, allow_partial=True)
    assert [h.id for h in partial] == [h.id for h in result] and partial.missing_shards == []

    with open(fixture_image("sketch", "guitar"), "rb") as f:
        by_bytes = client.search("gallery", image=f.read(), top_k=1)
    assert [h.id for h in by_bytes] == ["photo-guitar"]


def test_search_by_embedding(client, gallery):
    [dog] = client.get("gallery", ["photo-dog"], embeddings=True, after=gallery)
    assert dog.ok and len(dog.item.caption_text) > 0 and len(dog.item.image_features) > 0
    result = client.search("gallery", embedding=dog.item.caption_text, top_k=2)
    assert result.hits[0].id == "photo-dog"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_search_by_item_and_batch(client, gallery):
    # A stored item searches as its image does, less itself.
    by_image = client.search("gallery", image=fixture_image("photo", "dog"), mode="provenance",
                             top_k=4, after=gallery)
    by_item = client.search("gallery", item_id="photo-dog", mode="provenance", top_k=3)
    assert by_image.hits[0].id == "photo-dog"
    assert [h.id for h in by_item] == [h.id for h in by_image.hits[1:]]
    assert [h.score for h in by_item] == pytest.approx([h.score for h in by_image.hits[1:]],
                                                        abs=1e-4)
    with_self = client.search("gallery", item_id="photo-dog", top_k=1, include_self=True)
    assert [h.id for h in with_self] == ["photo-dog"]
    with pytest.raises(retrace.RetraceError) as e:
        client.search("gallery", item_id="no-such-item")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "query.item_id" in e.value.message

    # A batch: in order, the bad query failing alone.
    results = client.search_batch([
        {"collection": "gallery", "text": "a picture of a horse", "top_k": 1},
        {"collection": "gallery", "item_id": "no-such-item"},
        {"collection": "gallery", "item_id": "photo-dog", "mode": "provenance", "top_k": 3},
    ])
    assert [r.ok for r in results] == [True, False, True]
    assert [h.id for h in results[0].result] == ["photo-horse"]
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT
    assert results[1].message.startswith("queries[1]: query.item_id") and results[1].result is None
    assert [h.id for h in results[2].result] == [h.id for h in by_item]
    with pytest.raises(retrace.InvalidArgument) as e:
        client.search_batch([{"collection": "gallery", "text": "a dog", "colour": "red"}])
    assert "queries[0]" in e.value.message
    with pytest.raises(retrace.RetraceError) as e:
        client.search_batch([{"collection": "gallery", "text": "a dog"}] * 65)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "queries" in e.value.message


def test_index_near_duplicates(client, gallery):
    items = [("copy-of-cat", fixture_image("photo", "cat"), "a cat")]
    [result] = list(client.index("gallery", items, near_duplicate="skip"))
    assert result.code == grpc.StatusCode.ALREADY_EXISTS and result.skipped
    assert result.near_duplicate_id == "photo-cat"
    assert result.near_duplicate_similarity == pytest.approx(1.0, abs=1e-4)
    assert not client.get("gallery", ["copy-of-cat"])[0].ok
    with pytest.raises(retrace.InvalidArgument):
        list(client.index("gallery", items, near_duplicate="drop"))
    with pytest.raises(retrace.RetraceError) as e:
        list(client.index("gallery", items, near_duplicate="report", near_duplicate_threshold=2))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "near_duplicate.threshold" in e.value.message


def test_search_provenance_parts(client, gallery):
    result = client.search("gallery", image=fixture_image("photo", "dog"), mode="provenance",
                           caption="a picture of a dog", top_k=4, after=gallery)
    assert result.query_caption == "a picture of a dog"
    assert result.hits[0].id == "photo-dog"
    for hit in result:
        p = hit.provenance
        assert p is not None and p.caption_rank >= 0 and p.image_rank >= 0
        # S' = S + w1 exp(-beta P) + w2 exp(-beta P') with the defaults beta = 1, w1 = w2 = 0.1
        expected = p.base_score + 0.1 * math.exp(-p.caption_rank) + 0.1 * math.exp(-p.image_rank)
        assert p.score == pytest.approx(expected, abs=1e-5)
        assert hit.score == pytest.approx(p.score, abs=1e-6)
    assert result.hits[0].provenance.caption_rank == 0

    plain = client.search("gallery", image=fixture_image("photo", "dog"), mode="provenance",
                          no_rerank=True, top_k=2)
    assert plain.hits[0].provenance.caption_rank == -1


def test_search_hybrid_parts(client, gallery):
    result = client.search("gallery", text="a picture of a bird", mode="hybrid", top_k=3,
                           rrf_k=10)
    assert result.hits[0].id == "photo-bird"
    assert result.hits[0].hybrid is not None and result.hits[0].hybrid.caption_match_rank == 0


def test_search_caption_text_ranks_by_words(client, gallery):
    # "guitar" and "bird" are given captions ("a picture of a <class>"); the query's quote and
    # star are not query syntax.
    result = client.search("gallery", text='"Guitar"* bird', mode="caption_text", top_k=20)
    ids = [h.id for h in result.hits]
    assert set(ids[:2]) == {"photo-guitar", "photo-bird"}, ids
    assert all(h.score > 0 for h in result.hits)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    with pytest.raises(retrace.RetraceError) as e:
        client.search("gallery", image=fixture_image("photo", "dog"), mode="caption_text")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "CAPTION_TEXT" in e.value.message


def test_get_and_delete_with_positions(client, gallery):
    stream = client.index("gallery", [("extra", fixture_image("painting", "cat"), "a cat")])
    assert [r.ok for r in stream] == [True]
    got = client.get("gallery", ["extra", "never-stored"], after=stream.position)
    assert got[0].ok and got[0].item.caption == "a cat"
    assert got[1].code == grpc.StatusCode.NOT_FOUND and got[1].item is None

    deleted = client.delete("gallery", ["extra", "never-stored"])
    assert deleted.position > stream.position
    assert [r.code for r in deleted.results] == [grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND]
    [gone] = client.get("gallery", ["extra"], after=deleted.position)
    assert gone.code == grpc.StatusCode.NOT_FOUND


def test_server_errors_carry_codes(client, gallery):
    with pytest.raises(retrace.RetraceError) as e:
        client.search("no-such-collection", text="a dog")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    # A caption-space embedding of the wrong size: the server names the field.
    with pytest.raises(retrace.RetraceError) as e:
        client.search("gallery", embedding=[1.0, 0.0, 0.0])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "embedding" in e.value.message
    with pytest.raises(retrace.RetraceError) as e:
        client.create_collection("bad name!")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in e.value.message


@pytest.mark.parametrize("kwargs, field", [
    (dict(collection="", text="a dog"), "collection"),
    (dict(collection="gallery"), "query"),
    (dict(collection="gallery", text="a dog", image=b"x"), "query"),
    (dict(collection="gallery", text="a dog", top_k=0), "top_k"),
    (dict(collection="gallery", text="a dog", mode="fuzzy"), "mode"),
    (dict(collection="gallery", text="a dog", after=-1), "after"),
    (dict(collection="gallery", image="/nonexistent.png"), "image"),
])
def test_client_side_checks_name_the_field(client, kwargs, field):
    with pytest.raises(retrace.InvalidArgument) as e:
        client.search(**kwargs)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message.startswith(field + ":")
    assert isinstance(e.value, ValueError)


def test_client_side_checks_other_calls(client):
    with pytest.raises(retrace.InvalidArgument, match="INVALID_ARGUMENT: ids:"):
        client.get("gallery", [])
    with pytest.raises(retrace.InvalidArgument, match=r"INVALID_ARGUMENT: ids\[1\]:"):
        client.delete("gallery", ["a", ""])
    with pytest.raises(retrace.InvalidArgument, match="INVALID_ARGUMENT: batch:"):
        client.index("gallery", [], batch=0)
    with pytest.raises(retrace.InvalidArgument, match="INVALID_ARGUMENT: images:"):
        client.caption()


def test_aio_client(server, gallery):
    async def run():
        async with retrace.aio.Client(server, timeout=30) as client:
            assert await client.health() == "SERVING"
            stream = client.index("gallery", [("aio-item", fixture_image("clipart", "car"),
                                               "a picture of a car")], batch=1)
            results = [r async for r in stream]
            assert [(r.id, r.ok) for r in results] == [("aio-item", True)]
            result = await client.search("gallery", image=fixture_image("clipart", "car"),
                                         mode="provenance", caption="a picture of a car",
                                         after=stream.position, top_k=2)
            assert result.hits[0].id == "aio-item"
            assert result.hits[0].provenance is not None
            with pytest.raises(retrace.RetraceError) as e:
                await client.describe_collection("no-such-collection")
            assert e.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(retrace.RetraceError) as e:
                async for _ in client.index("no-such-collection", [fixture_image("photo", "dog")]):
                    pass
            assert e.value.code == grpc.StatusCode.NOT_FOUND
            deleted = await client.delete("gallery", ["aio-item"])
            assert deleted.position > stream.position
    asyncio.run(run())


HOOK = os.path.join(REPO, "client", "python", "examples", "post_render_hook.py")


def run_hook(server, *args):
    import json
    out = subprocess.run([sys.executable, HOOK, "--server", server] + list(args),
                         capture_output=True, text=True, timeout=60)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else out.stderr


def test_post_render_hook(server, gallery):
    render = fixture_image("photo", "horse")  # an exact copy of photo-horse
    code, verdict = run_hook(server, "--collection", "gallery", "--image", render,
                             "--prompt", "a picture of a horse", "--threshold", "0.9")
    assert code == 1, verdict
    assert verdict["decision"] == "review" and verdict["match"]["id"] == "photo-horse"
    assert set(verdict["match"]["provenance"]) == {"S", "P", "P_prime", "S_prime"}

    code, verdict = run_hook(server, "--collection", "gallery", "--image", render,
                             "--prompt", "a picture of a horse", "--threshold", "1.5")
    assert code == 0 and verdict["decision"] == "allow" and verdict["match"] is None

    code, verdict = run_hook(server, "--collection", "no-such-collection", "--image", render)
    assert code == 2 and verdict["decision"] == "error" and verdict["code"] == "NOT_FOUND"


def test_token_is_sent(tmp_path):
    token = "s3cret-token"
    tokens = tmp_path / "tokens.txtpb"
    tokens.write_text('tokens { name: "ops" sha256: "%s" scopes: "admin" }\n'
                      % hashlib.sha256(token.encode()).hexdigest())
    address, process = start_server(tmp_path, ["--auth-tokens", str(tokens)])
    try:
        with retrace.Client(address, timeout=30) as anonymous:
            assert anonymous.health() == "SERVING"  # health stays open
            with pytest.raises(retrace.RetraceError) as e:
                anonymous.list_collections()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with retrace.Client(address, token=token, timeout=30) as client:
            client.create_collection("private")
            assert [c.name for c in client.list_collections()] == ["private"]
    finally:
        stop_server(process)


def test_pip_install_offline(tmp_path):
    if shutil.which("protoc") is None or shutil.which("grpc_python_plugin") is None:
        pytest.skip("protoc or grpc_python_plugin missing")
    source = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "client", "python"), source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env = dict(os.environ, RETRACE_PROTO_DIR=os.path.join(REPO, "proto"))
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                    "--no-deps", "--no-index", "--target", str(tmp_path / "site"), str(source)],
                   check=True, env=env, timeout=120)
    env["PYTHONPATH"] = str(tmp_path / "site")
    out = subprocess.run([sys.executable, "-c",
                          "import retrace, retrace.aio, retrace.v1.retrace_pb2 as pb; "
                          "print(retrace.__file__, pb.SearchRequest.DESCRIPTOR.full_name)"],
                         capture_output=True, text=True, check=True, env=env, cwd=str(tmp_path))
    assert out.stdout.split() == [str(tmp_path / "site" / "retrace" / "__init__.py"),
                                  "retrace.v1.SearchRequest"]


def test_search_filter_and_min_score_through_the_server(client, gallery):
    """Issue 17: a filtered search returns only passing items in every mode, min_score cuts with
    a count, and a bad filter or threshold is INVALID_ARGUMENT naming the field. Through the
    real server with the oracle models (raw stubs: the Python client has no filter helper yet)."""
    from retrace import _requests as rq
    pb = rq.pb
    stub = client._stub
    with open(fixture_image("sketch", "cat"), "rb") as f:
        image = f.read()
    wanted = {"cat", "dog", "tree"}
    flt = pb.Filter(any=pb.FilterList(filters=[
        pb.Filter(condition=pb.FilterCondition(attribute="class", **{"in": pb.FilterValues(
            values=["cat", "dog"])})),
        pb.Filter(condition=pb.FilterCondition(attribute="class", prefix="tre"))]))
    for mode in (pb.CAPTION_MATCH, pb.PROVENANCE, pb.HYBRID):
        response = stub.Search(pb.SearchRequest(
            collection="gallery", image=image, mode=mode, top_k=8, filter=flt,
            query_caption="a picture of a cat", min_position=gallery))
        classes = [h.attributes["class"] for h in response.hits]
        assert set(classes) == wanted, (mode, classes)
        assert classes[0] == "cat", (mode, classes)
        if mode == pb.PROVENANCE:
            assert all(h.provenance.base_score != 0 for h in response.hits)
    # Unfiltered, the same query sees all eight; a filter nobody passes sees none.
    everything = stub.Search(pb.SearchRequest(collection="gallery", image=image, top_k=8))
    assert len(everything.hits) == 8
    none = stub.Search(pb.SearchRequest(collection="gallery", image=image, top_k=8, filter=pb.Filter(
        condition=pb.FilterCondition(attribute="class", equals="unicorn"))))
    assert len(none.hits) == 0
    # min_score between the best and the second score cuts all but the best, and says so.
    scores = [h.score for h in everything.hits]
    cut = stub.Search(pb.SearchRequest(collection="gallery", image=image, top_k=8,
                                       min_score=(scores[0] + scores[1]) / 2))
    assert [h.id for h in cut.hits] == [everything.hits[0].id]
    assert cut.cut_by_min_score == 7
    for request, field in [
            (pb.SearchRequest(collection="gallery", text="x", min_score=2), "min_score"),
            (pb.SearchRequest(collection="gallery", text="x", filter=pb.Filter(
                condition=pb.FilterCondition(attribute="class"))), "filter.condition"),
            (pb.SearchRequest(collection="gallery", text="x", filter=pb.Filter(all=pb.FilterList(
                filters=[pb.Filter(condition=pb.FilterCondition(attribute="a", exists=True))] *
                300))), "filter.all.filters[")]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Search(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert field in error.value.details(), error.value.details()


def test_filters_list_and_delete_through_the_client(client):
    """Issue 17: search(filter=, min_score=), items(filter=) over List pages and delete(filter=,
    dry_run=) through the Python client, filters given as dicts in the JSON form; a bad filter
    or a mix of ids and filter is InvalidArgument before any call."""
    client.create_collection("filtered")
    items = [retrace.Item(id="photo-" + c, image=fixture_image("photo", c),
                          caption="a picture of a %s" % c,
                          attributes={"class": c, "legs": str(4 if c in ("cat", "dog", "horse")
                                                              else 0)})
             for c in CLASSES]
    stream = client.index("filtered", items)
    assert all(r.ok for r in stream)
    four_legs = {"all": {"filters": [
        {"condition": {"attribute": "legs", "range": {"gte": 4}}},
        {"time": {"field": "CREATED", "range": {"gt": 0}}}]}}
    hits = client.search("filtered", text="a picture of a cat", filter=four_legs, top_k=8,
                         after=stream.position)
    assert {h.attributes["class"] for h in hits} == {"cat", "dog", "horse"}
    assert hits[0].attributes["class"] == "cat"
    listed = list(client.items("filtered", filter=four_legs, page_size=1))
    assert [i.id for i in listed] == ["photo-cat", "photo-dog", "photo-horse"]
    assert all(i.created_ms > 0 and i.updated_ms >= i.created_ms for i in listed)
    assert len(list(client.items("filtered"))) == len(CLASSES)

    counted = client.delete("filtered", filter=four_legs, dry_run=True)
    assert (counted.matched, counted.deleted) == (3, 0)
    done = client.delete("filtered", filter=four_legs)
    assert (done.matched, done.deleted) == (3, 3) and done.position > 0
    left = {i.id for i in client.items("filtered", after=done.position)}
    assert left == {"photo-" + c for c in CLASSES if c not in ("cat", "dog", "horse")}

    with pytest.raises(retrace.InvalidArgument, match="filter: "):
        client.search("filtered", text="x", filter={"no_such_field": 1})
    with pytest.raises(retrace.InvalidArgument, match="ids: give ids or a filter"):
        client.delete("filtered", ids=["photo-cat"], filter=four_legs)
    with pytest.raises(retrace.InvalidArgument, match="dry_run"):
        client.delete("filtered", ids=["photo-cat"], dry_run=True)
    with pytest.raises(retrace.RetraceError) as error:  # the server's own bound
        client.search("filtered", text="x", filter={"condition": {"attribute": "legs"}})
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter.condition" in error.value.message
    client.drop_collection("filtered")
