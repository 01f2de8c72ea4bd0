// Tests of the client library (client/retrace_client.h) against the in-process fake service.
#include "client/retrace_client.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/client/fake_retrace_service.h"

namespace retrace::client {
namespace {

using ::retrace::testing::FakeRetraceServer;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Le;

v1::Item MakeItem(const std::string& id, size_t image_bytes = 8) {
  v1::Item item;
  item.set_id(id);
  item.set_image(std::string(image_bytes, 'x'));
  return item;
}

std::unique_ptr<RetraceClient> ClientFor(const FakeRetraceServer& server, int in_flight = 4) {
  ClientOptions options;
  options.server = server.address();
  options.index_requests_in_flight = in_flight;
  return RetraceClient::Connect(options);
}

TEST(RetraceClientTest, IndexItemsBatchesPipelinesAndKeepsOrder) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  std::vector<v1::Item> items;
  std::vector<std::string> expected_ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = absl::StrCat(i % 10 == 3 ? "bad-" : "item-", i);
    items.push_back(MakeItem(id));
    expected_ids.push_back(id);
  }
  std::vector<std::string> ids;
  int failed = 0;
  grpc::Status status = client->IndexItems("c", std::move(items), 7, [&](const v1::IndexResult& r) {
    ids.push_back(r.id());
    if (r.status().code() != 0) {
      ++failed;
      EXPECT_EQ(r.status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    } else {
      EXPECT_EQ(r.caption(), "caption of " + r.id());
    }
  });
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ids, expected_ids);
  EXPECT_EQ(failed, 10);
  const std::vector<int> sizes = server.service().index_batch_sizes();
  EXPECT_EQ(sizes.size(), 15u);
  EXPECT_THAT(sizes, Each(Le(7)));
  EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), 0), 100);
  // The fake answers 2 ms after reading, so a pipelining client has several requests pending.
  EXPECT_LE(server.service().max_index_requests_pending(), 4);
  EXPECT_GE(server.service().max_index_requests_pending(), 2);
}

TEST(RetraceClientTest, IndexItemsWindowOfOneWaitsForEachAnswer) {
  FakeRetraceServer server;
  auto client = ClientFor(server, /*in_flight=*/1);
  std::vector<v1::Item> items;
  for (int i = 0; i < 20; ++i) items.push_back(MakeItem(absl::StrCat(i)));
  int results = 0;
  ASSERT_TRUE(client->IndexItems("c", std::move(items), 3, [&](auto&) { ++results; }).ok());
  EXPECT_EQ(results, 20);
  EXPECT_EQ(server.service().max_index_requests_pending(), 1);
}

TEST(RetraceClientTest, IndexItemsFromASource) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  int produced = 0;
  ItemSource source = [&]() -> std::optional<v1::Item> {
    if (produced == 50) return std::nullopt;
    return MakeItem(absl::StrCat("s", produced++));
  };
  int results = 0;
  ASSERT_TRUE(client->IndexItems("c", source, 16, [&](auto&) { ++results; }).ok());
  EXPECT_EQ(results, 50);
  EXPECT_THAT(server.service().index_batch_sizes(), ElementsAre(16, 16, 16, 2));
}

TEST(RetraceClientTest, IndexItemsWithNoItemsMakesNoCall) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  int results = 0;
  EXPECT_TRUE(
      client->IndexItems("missing", std::vector<v1::Item>{}, 8, [&](auto&) { ++results; }).ok());
  EXPECT_EQ(results, 0);
  EXPECT_TRUE(server.service().index_batch_sizes().empty());
}

TEST(RetraceClientTest, IndexItemsReturnsTheStreamError) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  std::vector<v1::Item> items;
  for (int i = 0; i < 40; ++i) items.push_back(MakeItem(absl::StrCat(i)));
  int results = 0;
  grpc::Status status =
      client->IndexItems("missing", std::move(items), 4, [&](auto&) { ++results; });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(results, 0);
}

TEST(RetraceClientTest, ItemsThatCannotBeSentFailLocallyInOrder) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  std::vector<v1::Item> items = {MakeItem("a"), MakeItem("b"), MakeItem("bad\xff"), MakeItem("d")};
  items[3].set_caption("caf\xc3");  // truncated UTF-8
  items.push_back(MakeItem("e"));
  std::vector<std::string> order;
  ASSERT_TRUE(client
                  ->IndexItems("c", std::move(items), 10,
                               [&](const v1::IndexResult& r) {
                                 order.push_back(absl::StrCat(r.id(), ":", r.status().code(), ":",
                                                              r.status().message()));
                               })
                  .ok());
  EXPECT_THAT(order, ElementsAre("a:0:", "b:0:", "bad\xff:3:id: not valid UTF-8",
                                 "d:3:caption: not valid UTF-8", "e:0:"));
  EXPECT_THAT(server.service().index_batch_sizes(), ElementsAre(2, 1));
}

TEST(RetraceClientTest, IndexItemsSplitsRequestsByBytes) {
  FakeRetraceServer server;
  ClientOptions options;
  options.server = server.address();
  options.max_message_bytes = 4096 + 10000;  // 10000 bytes of items per request
  auto client = RetraceClient::Connect(options);
  std::vector<v1::Item> items;
  for (int i = 0; i < 10; ++i) items.push_back(MakeItem(absl::StrCat(i), 3000));
  items.push_back(MakeItem("huge", 20000));
  std::vector<int> codes;
  ASSERT_TRUE(
      client
          ->IndexItems("c", std::move(items), 64,
                       [&](const v1::IndexResult& r) { codes.push_back(r.status().code()); })
          .ok());
  EXPECT_THAT(server.service().index_batch_sizes(), ElementsAre(3, 3, 3, 1));
  ASSERT_EQ(codes.size(), 11u);
  EXPECT_EQ(codes.back(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(RetraceClientTest, UnaryCallsReachTheService) {
  FakeRetraceServer server;
  auto client = ClientFor(server);
  v1::SearchRequest request;
  request.set_collection("c");
  request.set_text("a horse");
  request.set_top_k(2);
  v1::SearchResponse response;
  ASSERT_TRUE(client->Search(request, &response).ok());
  ASSERT_EQ(response.hits_size(), 2);
  EXPECT_EQ(response.hits(0).id(), "a");

  v1::Collection collection;
  v1::DescribeCollectionRequest describe;
  describe.set_name("missing");
  EXPECT_EQ(client->DescribeCollection(describe, &collection).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(client->stub(), nullptr);
}

TEST(RetraceClientTest, UnreachableServerIsUnavailable) {
  ClientOptions options;
  options.server = "127.0.0.1:1";  // nothing listens on port 1
  auto client = RetraceClient::Connect(options);
  v1::ListCollectionsResponse response;
  EXPECT_EQ(client->ListCollections({}, &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  std::vector<v1::Item> items = {MakeItem("a")};
  int results = 0;
  EXPECT_EQ(client->IndexItems("c", std::move(items), 1, [&](auto&) { ++results; }).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(results, 0);
}

}  // namespace
}  // namespace retrace::client
