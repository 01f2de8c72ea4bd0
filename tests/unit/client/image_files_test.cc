// Tests of the CLI's folder walking, id derivation and file reading (client/cli/image_files.h).
#include "client/cli/image_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Ids(const ImageFileList& list) {
  std::vector<std::string> ids;
  for (const ImageFile& file : list.files) ids.push_back(file.id);
  return ids;
}

class ImageFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/retrace_image_files_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& relative, const std::string& content = "bytes") {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }

  fs::path root_;
};

TEST(HasImageExtensionTest, KnownExtensionsInAnyCase) {
  for (const char* yes : {"a.jpg", "a.JPEG", "dir/b.Png", "c.webp", "d.BMP", "x.y.jpg"}) {
    EXPECT_TRUE(HasImageExtension(yes)) << yes;
  }
  for (const char* no : {"a.gif", "a.txt", "jpg", ".jpg.txt", "dir.jpg/file", "a.jpgx", "a."}) {
    EXPECT_FALSE(HasImageExtension(no)) << no;
  }
}

TEST_F(ImageFilesTest, WalksNestedFoldersSortedWithRelativeIds) {
  Write("sketch/horse/b.png");
  Write("sketch/horse/a.JPG");
  Write("photo/dog/x.jpeg");
  Write("photo/notes.txt");
  Write("top.WebP");
  Write("README");
  const ImageFileList list = FindImageFiles({root_.string()});
  EXPECT_TRUE(list.errors.empty());
  EXPECT_THAT(Ids(list), ElementsAre("photo/dog/x.jpeg", "sketch/horse/a.JPG", "sketch/horse/b.png",
                                     "top.WebP"));
  EXPECT_EQ(list.skipped, 2);
  EXPECT_EQ(list.files[1].path, (root_ / "sketch/horse/a.JPG").string());
}

TEST_F(ImageFilesTest, TrailingSlashAndSubfolderArgument) {
  Write("pacs/sketch/horse/x.png");
  EXPECT_THAT(Ids(FindImageFiles({(root_ / "pacs").string() + "/"})),
              ElementsAre("sketch/horse/x.png"));
  EXPECT_THAT(Ids(FindImageFiles({(root_ / "pacs/sketch").string()})), ElementsAre("horse/x.png"));
}

TEST_F(ImageFilesTest, FileArgumentsUseTheFileNameAndKeepArgumentOrder) {
  Write("z/b.png");
  Write("a/c.bmp");
  Write("a/notes.txt");
  const ImageFileList list =
      FindImageFiles({(root_ / "z/b.png").string(), (root_ / "a/c.bmp").string(),
                      (root_ / "a/notes.txt").string()});
  EXPECT_THAT(Ids(list), ElementsAre("b.png", "c.bmp"));
  EXPECT_EQ(list.skipped, 1);
}

TEST_F(ImageFilesTest, SymlinkLoopsAreNotFollowedButFileLinksAre) {
  Write("data/a/x.png");
  Write("elsewhere/y.png");
  fs::create_directory_symlink(root_ / "data", root_ / "data/a/loop");     // a loop
  fs::create_directory_symlink(root_ / "elsewhere", root_ / "data/out");   // a folder link
  fs::create_symlink(root_ / "elsewhere/y.png", root_ / "data/link.png");  // a file link
  fs::create_symlink(root_ / "nowhere.png", root_ / "data/broken.png");    // a broken link
  const ImageFileList list = FindImageFiles({(root_ / "data").string()});
  EXPECT_TRUE(list.errors.empty());
  EXPECT_THAT(Ids(list), ElementsAre("a/x.png", "link.png"));
  EXPECT_EQ(list.skipped, 3);
}

TEST_F(ImageFilesTest, SymlinkArgumentToAFolderIsFollowed) {
  Write("real/x.png");
  fs::create_directory_symlink(root_ / "real", root_ / "alias");
  EXPECT_THAT(Ids(FindImageFiles({(root_ / "alias").string()})), ElementsAre("x.png"));
}

TEST_F(ImageFilesTest, MissingPathIsAnError) {
  Write("a.png");
  const ImageFileList list =
      FindImageFiles({(root_ / "missing").string(), (root_ / "a.png").string()});
  ASSERT_EQ(list.errors.size(), 1u);
  EXPECT_THAT(list.errors[0], HasSubstr("missing: No such file or directory"));
  EXPECT_THAT(Ids(list), ElementsAre("a.png"));
}

TEST_F(ImageFilesTest, UnreadableFolderIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every folder";
  Write("locked/a.png");
  fs::permissions(root_ / "locked", fs::perms::none);
  const ImageFileList list = FindImageFiles({root_.string()});
  fs::permissions(root_ / "locked", fs::perms::owner_all);
  ASSERT_EQ(list.errors.size(), 1u);
  EXPECT_THAT(list.errors[0], HasSubstr("locked"));
}

TEST_F(ImageFilesTest, ReadFileBytes) {
  Write("a.png", std::string("\x89PNG\0\1", 6));
  auto bytes = ReadFileBytes((root_ / "a.png").string(), 100);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, std::string("\x89PNG\0\1", 6));

  auto too_big = ReadFileBytes((root_ / "a.png").string(), 5);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_big.status().message(), HasSubstr("6 bytes, over the limit of 5"));

  auto missing = ReadFileBytes((root_ / "nope.png").string(), 100);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("No such file or directory"));

  auto folder = ReadFileBytes(root_.string(), 100);
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace retrace::cli
