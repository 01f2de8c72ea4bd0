// The shard map file: its rules, errors naming the entry, a shard server's group, and a
// frontend's view that takes a changed valid map and keeps the old one over a bad one.
#include "server/cluster/shard_map.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/null_sink.h"

namespace retrace::server {
namespace {

using ::testing::HasSubstr;

v1::ShardMap Map(std::vector<std::vector<std::string>> groups) {
  v1::ShardMap map;
  for (const auto& replicas : groups) {
    v1::ShardGroup& g = *map.add_groups();
    for (const std::string& r : replicas) g.add_replicas(r);
  }
  return map;
}

TEST(ShardMapTest, RulesNameTheEntry) {
  EXPECT_TRUE(ValidateShardMap(Map({{"a:1", "b:1"}, {"c:1"}})).ok());
  EXPECT_THAT(ValidateShardMap(Map({})).message(), HasSubstr("groups: 0 groups, not 1..256"));
  EXPECT_THAT(ValidateShardMap(Map({{"a:1"}, {}})).message(),
              HasSubstr("groups[1].replicas: 0 replicas, not 1..64"));
  EXPECT_THAT(ValidateShardMap(Map({{"a:1"}, {"b:2", "a:1"}})).message(),
              HasSubstr("groups[1].replicas[1]: 'a:1' is listed already as groups[0].replicas[0]"));
  EXPECT_THAT(ValidateShardMap(Map({{"a:1", "a:1"}})).message(),
              HasSubstr("groups[0].replicas[1]: 'a:1' is listed already"));
  for (const char* bad : {"a", ":1", "a:0", "a:65536", "a:x"}) {
    EXPECT_THAT(ValidateShardMap(Map({{bad}})).message(), HasSubstr("is not host:port")) << bad;
  }
}

TEST(ShardMapTest, AShardServerFindsItsGroupByItsAddress) {
  const v1::ShardMap map = Map({{"a:1", "b:1"}, {"c:1", "d:1"}});
  EXPECT_EQ(*GroupOf(map, "a:1"), 0);
  EXPECT_EQ(*GroupOf(map, "d:1"), 1);
  EXPECT_THAT(GroupOf(map, "e:1").status().message(),
              HasSubstr("the shard map lists no replica 'e:1'"));
}

TEST(ShardMapTest, AFileReloadsAValidMapAndKeepsTheOldOneOverABadOne) {
  const std::string path = ::testing::TempDir() + "retrace_shard_map_test.txtpb";
  std::ofstream(path) << "groups { replicas: \"a:1\" }\n";
  auto log =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  auto file = ShardMapFile::Open(path, log);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Current()->groups_size(), 1);

  std::ofstream(path) << "groups { replicas: \"a:1\" }\ngroups { replicas: \"b:1\" }\n";
  EXPECT_TRUE((*file)->Reload().ok());
  EXPECT_EQ((*file)->Current()->groups_size(), 2);

  std::ofstream(path) << "groups { replicas: \"a:1\" replicas: \"a:1\" }\n";
  absl::Status refused = (*file)->Reload();
  EXPECT_THAT(refused.message(), HasSubstr(path + ": groups[0].replicas[1]"));
  EXPECT_EQ((*file)->Current()->groups_size(), 2);
  std::ofstream(path) << "groups { replica: \"a:1\" }\n";
  EXPECT_THAT((*file)->Reload().message(), HasSubstr("not a retrace.v1.ShardMap in text format"));
  EXPECT_EQ((*file)->Current()->groups_size(), 2);

  std::filesystem::remove(path);
  EXPECT_EQ((*file)->Reload().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*file)->Current()->groups_size(), 2);
  EXPECT_EQ(ShardMapFile::Open(path, log).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace retrace::server
