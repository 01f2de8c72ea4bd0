// The malformed-input corpus against the real server: every bad input is refused with
// INVALID_ARGUMENT naming the field and the item, the good items of the same call are stored,
// and the server stays up. The corpus: a truncated JPEG, a PNG whose header declares
// 100000x100000 pixels, empty and all-zero bytes, random bytes, GIF, TIFF, SVG and HTML files,
// a 10,000-character caption and an id that is not valid UTF-8.
#include <zlib.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::NoiseImage;

struct BadInput {
  std::string name;
  std::string bytes;
  std::string expect;  // a phrase the error message must hold
};

std::string BigEndian32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

// HugePng: a well-formed PNG signature and IHDR (with a correct CRC) declaring 100000x100000
// RGB pixels, followed by a scrap of IDAT: the decoder must refuse it from the header alone.
std::string HugePng() {
  std::string ihdr = "IHDR" + BigEndian32(100000) + BigEndian32(100000) +
                     std::string{8, 2, 0, 0, 0};  // 8-bit RGB, no interlace
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(ihdr.data()), ihdr.size());
  std::string png = "\x89PNG\r\n\x1a\n";
  png += BigEndian32(13) + ihdr + BigEndian32(static_cast<uint32_t>(crc));
  png += BigEndian32(4) + "IDAT" + std::string(4, '\0') + BigEndian32(0);
  return png;
}

std::string RandomBytes(size_t n) {
  std::mt19937 random(20261122);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xFF);
  return bytes;
}

std::vector<BadInput> BadImages() {
  const std::string jpeg = NoiseImage(64, 48, 5, ".jpg");
  return {
      {"truncated.jpg", jpeg.substr(0, jpeg.size() / 2), "JPEG"},
      {"huge.png", HugePng(), "100000x100000"},
      {"empty", "", "image"},
      {"zeros", std::string(1024, '\0'), "image"},
      {"random", RandomBytes(4096), "image"},
      {"image.gif", std::string("GIF89a\x01\x00\x01\x00\x80\x00\x00", 13) + std::string(32, '\0'),
       "image"},
      {"image.tif", std::string("II*\x00\x08\x00\x00\x00", 8) + std::string(64, '\0'), "image"},
      {"image.svg",
       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect "
       "width=\"10\" height=\"10\"/></svg>",
       "image"},
      {"page.html", "<!DOCTYPE html><html><body><img src=\"x.jpg\"></body></html>", "image"},
  };
}

class MalformedInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(FixtureDir() + "/demo/clip/model.pt")) {
      GTEST_SKIP() << "test models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/demo", testing::NewTempDir("malformed")});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    grpc::ClientContext context;
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name("c");
    v1::Collection response;
    ASSERT_TRUE(stub_->CreateCollection(&context, request, &response).ok());
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(MalformedInputTest, IndexRefusesEachBadItemAndStoresTheRest) {
  v1::IndexRequest request;
  request.set_collection("c");
  auto add = [&](const std::string& id, std::string image, std::string caption = "") {
    v1::Item* item = request.add_items();
    item->set_id(id);
    item->set_image(std::move(image));
    item->set_caption(std::move(caption));
  };
  add("good-first", NoiseImage(64, 48, 1, ".jpg"));
  const std::vector<BadInput> bad = BadImages();
  for (const BadInput& input : bad) add(input.name, input.bytes);
  add("long-caption", NoiseImage(64, 48, 2, ".png"), std::string(10000, 'x'));
  add(std::string("bad-utf8-\xc3\x28", 11), NoiseImage(64, 48, 3, ".png"));
  add("good-last", NoiseImage(64, 48, 4, ".png"));

  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(stream->Finish().ok());
  const int n = request.items_size();
  ASSERT_EQ(response.results_size(), n);

  EXPECT_EQ(response.results(0).status().code(), 0) << response.results(0).status().message();
  EXPECT_EQ(response.results(n - 1).status().code(), 0);
  for (size_t b = 0; b < bad.size(); ++b) {
    const int i = static_cast<int>(b) + 1;
    const v1::ItemStatus& status = response.results(i).status();
    SCOPED_TRACE(bad[b].name + ": " + status.message());
    EXPECT_EQ(status.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat("items[", i, "]")));
    EXPECT_TRUE(absl::StrContains(status.message(), "image"));
    EXPECT_TRUE(absl::StrContains(status.message(), bad[b].expect));
  }
  const v1::ItemStatus& caption = response.results(n - 3).status();
  EXPECT_EQ(caption.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(absl::StrContains(caption.message(), absl::StrCat("items[", n - 3, "]")));
  EXPECT_TRUE(absl::StrContains(caption.message(), "caption: 10000 bytes")) << caption.message();
  const v1::ItemStatus& id = response.results(n - 2).status();
  EXPECT_EQ(id.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(absl::StrContains(id.message(), absl::StrCat("items[", n - 2, "]")));
  EXPECT_TRUE(absl::StrContains(id.message(), "id: not valid UTF-8")) << id.message();

  // The good items are stored and searchable; the bad ones are not there.
  grpc::ClientContext get_context;
  v1::GetRequest get;
  get.set_collection("c");
  get.add_ids("good-first");
  get.add_ids("good-last");
  get.add_ids("truncated.jpg");
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&get_context, get, &got).ok());
  EXPECT_EQ(got.results(0).status().code(), 0);
  EXPECT_EQ(got.results(1).status().code(), 0);
  EXPECT_EQ(got.results(2).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(server_->HealthStatus(), "SERVING");
}

TEST_F(MalformedInputTest, SearchAndCaptionNameTheBadImage) {
  v1::CaptionRequest caption;
  caption.add_images(NoiseImage(64, 48, 1, ".jpg"));
  for (const BadInput& input : BadImages()) {
    caption.add_images(input.bytes);
    grpc::ClientContext context;
    v1::SearchRequest search;
    search.set_collection("c");
    search.set_image(input.bytes);
    v1::SearchResponse response;
    grpc::Status status = stub_->Search(&context, search, &response);
    SCOPED_TRACE(input.name + ": " + status.error_message());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "image"));
  }
  grpc::ClientContext context;
  v1::CaptionResponse captions;
  ASSERT_TRUE(stub_->Caption(&context, caption, &captions).ok());
  ASSERT_EQ(captions.results_size(), caption.images_size());
  EXPECT_EQ(captions.results(0).status().code(), 0);
  EXPECT_FALSE(captions.results(0).caption().empty());
  for (int i = 1; i < captions.results_size(); ++i) {
    EXPECT_EQ(captions.results(i).status().code(),
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_TRUE(
        absl::StrContains(captions.results(i).status().message(), absl::StrCat("images[", i, "]")))
        << captions.results(i).status().message();
  }
  // A 10,000-character text query is refused naming the field.
  grpc::ClientContext text_context;
  v1::SearchRequest text;
  text.set_collection("c");
  text.set_text(std::string(10000, 'y'));
  v1::SearchResponse response;
  grpc::Status status = stub_->Search(&text_context, text, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "text")) << status.error_message();
  EXPECT_EQ(server_->HealthStatus(), "SERVING");
}

}  // namespace
}  // namespace retrace
