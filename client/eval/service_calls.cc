#include "client/eval/service_calls.h"

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace retrace::eval {

constexpr int kIndexBatch = 32;

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<std::string> ReadImageFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  return bytes;
}

absl::Status FillFreshCollection(client::RetraceClient& client, const std::string& collection,
                                 const std::vector<ImageFile>& files) {
  v1::DropCollectionRequest drop;
  drop.set_name(collection);
  v1::DropCollectionResponse dropped;
  grpc::Status drop_status = client.DropCollection(drop, &dropped);
  if (!drop_status.ok() && drop_status.error_code() != grpc::StatusCode::NOT_FOUND) {
    return FromGrpc(drop_status, absl::StrCat("drop ", collection));
  }
  v1::CreateCollectionRequest create;
  create.mutable_collection()->set_name(collection);
  v1::Collection created;
  if (absl::Status s = FromGrpc(client.CreateCollection(create, &created),
                                absl::StrCat("create ", collection));
      !s.ok()) {
    return s;
  }
  std::vector<v1::Item> items;
  for (const ImageFile& file : files) {
    absl::StatusOr<std::string> bytes = ReadImageFile(file.path);
    if (!bytes.ok()) return bytes.status();
    v1::Item& item = items.emplace_back();
    item.set_id(file.id);
    item.set_image(std::move(*bytes));
    item.set_caption(file.caption);
  }
  absl::Status first_failure;
  grpc::Status status = client.IndexItems(
      collection, std::move(items), kIndexBatch, [&](const v1::IndexResult& r) {
        if (r.status().code() != 0 && first_failure.ok()) {
          first_failure = absl::Status(static_cast<absl::StatusCode>(r.status().code()),
                                       absl::StrCat("index ", collection, ": ", r.id(), ": ",
                                                    r.status().message()));
        }
      });
  if (absl::Status s = FromGrpc(status, absl::StrCat("index ", collection)); !s.ok()) return s;
  return first_failure;
}

}  // namespace retrace::eval
