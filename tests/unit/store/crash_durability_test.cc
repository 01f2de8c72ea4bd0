// Crash durability of SqliteItemStore, for real: a fork()ed child writes batches in a loop and
// acknowledges each one on a pipe only after PutItems returned OK; the parent SIGKILLs it at a
// random moment, reopens the directory and checks that
//   - every acknowledged batch is present, every item byte-exact;
//   - no batch is half-present (all of its items or none);
//   - nothing beyond the one batch that may have committed unacknowledged is present.
// Five trials share one directory, so each reopen also recovers from the previous crash.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/store/sqlite_item_store.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::SameItem;
using ::retrace::store::testing::ScratchDir;
using ::retrace::store::testing::TestCollection;

constexpr char kCollection[] = "art";

// BatchItems returns batch `batch` of trial `trial`: 1 to 24 items with 2×64-float embeddings.
std::vector<StoredItem> BatchItems(int trial, int batch) {
  std::vector<StoredItem> items;
  const int size = 1 + (batch * 7 + trial * 5) % 24;
  for (int i = 0; i < size; ++i) {
    items.push_back(MakeItem(absl::StrCat("t", trial, "-b", batch, "-i", i), 64, batch));
  }
  return items;
}

void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(4);
    done += static_cast<size_t>(n);
  }
}

// RunChild writes batches until killed; reports "<batch>\n" after each OK, "E <status>\n" on an
// error. Never returns.
[[noreturn]] void RunChild(const std::string& dir, int trial, int ack_fd) {
  auto store = SqliteItemStore::Open(dir);
  if (!store.ok()) {
    WriteAll(ack_fd, absl::StrCat("E ", store.status().ToString(), "\n"));
    ::_exit(2);
  }
  for (int batch = 0; batch < 100000; ++batch) {
    absl::StatusOr<int64_t> seq = (*store)->PutItems(kCollection, BatchItems(trial, batch));
    if (!seq.ok()) {
      WriteAll(ack_fd, absl::StrCat("E ", seq.status().ToString(), "\n"));
      ::_exit(3);
    }
    WriteAll(ack_fd, absl::StrCat(batch, "\n"));
  }
  ::_exit(0);
}

// ReadLine reads one '\n'-terminated line from `fd` (through `buffer`); false at end of file.
bool ReadLine(int fd, std::string* buffer, std::string* line) {
  while (true) {
    size_t end = buffer->find('\n');
    if (end != std::string::npos) {
      *line = buffer->substr(0, end);
      buffer->erase(0, end + 1);
      return true;
    }
    char chunk[4096];
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
  }
}

TEST(CrashDurabilityTest, AcknowledgedBatchesSurviveSigkillAndNoBatchIsTorn) {
  ScratchDir dir;
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateCollection(TestCollection(kCollection)).ok());
  }
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  int64_t expected_count = 0;

  for (int trial = 0; trial < 5; ++trial) {
    SCOPED_TRACE(absl::StrCat("trial ", trial));
    const int acks_before_kill = std::uniform_int_distribution<int>(1, 30)(rng);
    const int delay_us = std::uniform_int_distribution<int>(0, 4000)(rng);

    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      RunChild(dir.path(), trial, fds[1]);
    }
    ::close(fds[1]);

    std::string buffer, line, child_error;
    std::set<int> acked;
    auto take = [&](const std::string& text) {
      int batch;
      if (absl::SimpleAtoi(text, &batch)) {
        acked.insert(batch);
      } else {
        child_error = text;
      }
    };
    while (static_cast<int>(acked.size()) < acks_before_kill && child_error.empty() &&
           ReadLine(fds[0], &buffer, &line)) {
      take(line);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    ::kill(pid, SIGKILL);
    // Acknowledgements written before the kill are still in the pipe: they count too.
    while (ReadLine(fds[0], &buffer, &line)) take(line);
    ::close(fds[0]);
    int wait_status = 0;
    ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
    ASSERT_TRUE(child_error.empty()) << "child failed: " << child_error;
    ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "child was not killed mid-run (status " << wait_status << ")";
    ASSERT_FALSE(acked.empty());
    const int last_acked = *acked.rbegin();
    ASSERT_EQ(static_cast<int>(acked.size()), last_acked + 1) << "acknowledgements out of order";

    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    // Batches past the last acknowledged one: the next may have committed unacknowledged; the
    // one after that was never started.
    for (int batch = 0; batch <= last_acked + 2; ++batch) {
      SCOPED_TRACE(absl::StrCat("batch ", batch));
      std::vector<StoredItem> items = BatchItems(trial, batch);
      std::vector<std::string> ids;
      for (const StoredItem& item : items) ids.push_back(item.id);
      auto got = (*store)->GetItems(kCollection, ids);
      ASSERT_TRUE(got.ok()) << got.status();
      size_t present = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!(*got)[i].has_value()) continue;
        ++present;
        EXPECT_TRUE(SameItem(items[i], *(*got)[i]));
      }
      if (batch <= last_acked) {
        EXPECT_EQ(present, items.size()) << "an acknowledged batch was lost";
      } else if (batch == last_acked + 1) {
        EXPECT_TRUE(present == 0 || present == items.size())
            << "torn batch: " << present << " of " << items.size() << " items present";
      } else {
        EXPECT_EQ(present, 0u) << "a batch that was never written is present";
      }
      expected_count += static_cast<int64_t>(present);
    }
    absl::StatusOr<int64_t> count = (*store)->CountItems(kCollection);
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, expected_count);
  }
}

}  // namespace
}  // namespace retrace::store
