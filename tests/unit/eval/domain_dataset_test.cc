#include "core/eval/domain_dataset.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/shared_data.h"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DomainDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::path(::testing::TempDir()) /
             ::testing::UnitTest::GetInstance()->current_test_info()->name())
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Touch(const std::string& relative, const std::string& content = "x") {
    fs::path path = fs::path(root_) / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << content;
  }

  std::string root_;
};

TEST_F(DomainDatasetTest, ReadsThreeLevelsAndSkipsEverythingElse) {
  Touch("sketch/dog/a.jpg");
  Touch("sketch/cat/b.png");
  Touch("photo/dog/c.JPG");
  Touch("photo/dog/notes.txt");        // not an image
  Touch("photo/dog/.hidden.jpg");      // hidden
  Touch("photo/.trash/x.jpg");         // hidden class
  Touch("photo/dog/deeper/y.jpg");     // too deep
  Touch("README.md");                  // top level
  auto data = ReadDomainDataset(root_);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->images.size(), 3u);
  EXPECT_EQ(data->images[0].id, "photo/dog/c.JPG");
  EXPECT_EQ(data->images[0].domain, "photo");
  EXPECT_EQ(data->images[0].label, "dog");
  EXPECT_TRUE(fs::exists(data->images[0].path));
  EXPECT_THAT(data->domains, ElementsAre("photo", "sketch"));
  EXPECT_THAT(data->classes, ElementsAre("cat", "dog"));
  EXPECT_EQ(data->InDomain("sketch").size(), 2u);
  EXPECT_TRUE(data->InDomain("cartoon").empty());
}

TEST_F(DomainDatasetTest, AnEmptyOrMissingRootIsAClearError) {
  Touch("flat.jpg");
  auto empty = ReadDomainDataset(root_);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("<domain>/<class>/<image>"));
  EXPECT_EQ(ReadDomainDataset(root_ + "/nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DomainDatasetTest, ASplitFileKeepsWhatItLists) {
  Touch("real/dog/1.jpg");
  Touch("real/dog/2.jpg");
  Touch("clipart/cat/3.jpg");
  auto data = ReadDomainDataset(root_);
  ASSERT_TRUE(data.ok()) << data.status();
  const std::string split = root_ + "/real_test.txt";
  std::ofstream(split) << "real/dog/2.jpg 4\r\n\nclipart/cat/3.jpg 7\n";
  auto kept = ApplySplitFile(*data, split);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->images.size(), 2u);
  EXPECT_EQ(kept->images[0].id, "clipart/cat/3.jpg");
  EXPECT_EQ(kept->images[1].id, "real/dog/2.jpg");
  EXPECT_THAT(kept->domains, ElementsAre("clipart", "real"));

  std::ofstream(split) << "real/dog/1.jpg 4\nreal/1.jpg 4\n";
  auto malformed = ApplySplitFile(*data, split);
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(malformed.status().message()), HasSubstr("real_test.txt:2"));

  std::ofstream(split) << "real/dog/9.jpg 4\n";
  auto missing = ApplySplitFile(*data, split);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("real/dog/9.jpg"));
  EXPECT_EQ(ApplySplitFile(*data, root_ + "/none.txt").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DomainDatasetPacsTest, PacsMiniHasFourDomainsOfSevenClasses) {
  RETRACE_REQUIRE_SHARED_DATA("pacs-mini");
  auto data = ReadDomainDataset(retrace::testing::SharedDataPath("pacs-mini"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->images.size(), 224u);  // README.md is skipped
  EXPECT_THAT(data->domains, ElementsAre("art_painting", "cartoon", "photo", "sketch"));
  EXPECT_EQ(data->classes.size(), 7u);
}

}  // namespace
}  // namespace retrace::eval
