// ingest.h — the write path: Index and Delete.
//
// Index, per call: validate each item (a bad item fails alone) → skip the items stored with the
// same content (their stored versions' positions still count) → decode → caption the items
// without one → CLIP image embeddings → CLIP text embeddings of the captions → image-encoder
// (CS-SLIP) embeddings when the collection has one → ONE store transaction (PutItems). The
// commit is the point of no return. Nothing here touches an index: the follower applies the
// commit (follower.h), and the call waits until this replica has applied it — read your own
// writes — before it acknowledges, up to ReplicationOptions.ack_timeout (or the call's deadline).
// An item stored but not applied in that time is answered UNAVAILABLE, naming the position and
// the reason; it stays pending, the follower retries, and a retry of the same item answers
// `unchanged` only once it is applied. So no item is ever "stored but never searchable".
// Delete has the same shape: one store transaction, then wait for the follower.
// A call with a scope (CallOptions.scope, a tenant's filter) sets or checks the scope's
// attributes on each item, never overwrites a stored item outside it (ALREADY_EXISTS) and
// deletes only items inside it (NOT_FOUND for the others, as for an absent id). The check reads
// the store before the write's transaction: a concurrent write of the same id by another
// tenant between the two is not caught (advise tenants to prefix their ids).
//
// Thread-safety: safe for concurrent use; calls on one collection run concurrently too (the
// store orders their commits, the follower applies them in that order).
//
//   RETRACE_ASSIGN_OR_RETURN(WriteResult written, ingest.Index(*collection, std::move(items), call));
#ifndef RETRACE_CORE_ENGINE_INGEST_H_
#define RETRACE_CORE_ENGINE_INGEST_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/batchers.h"
#include "core/engine/engine_types.h"
#include "core/engine/follower.h"
#include "core/engine/live_collection.h"
#include "core/engine/space_search.h"
#include "core/engine/stage_observer.h"
#include "core/store/item_store.h"

namespace retrace::engine {

class Ingest {
 public:
  struct Options {
    EngineLimits limits;
    models::CaptionOptions caption;  // Index-time captions
    int inference_batch_size = defaults::kInferenceBatchSize;
    absl::Duration ack_timeout = defaults::kAckTimeout;
    absl::Duration retry_min = defaults::kRetryMin;
    FollowOptions follow;
    StageObserver* stage_observer = nullptr;
  };
  // Not owned; must outlive this object. `spaces` answers the near-duplicate check.
  Ingest(Options options, Batchers* batchers, SpaceSearcher* spaces, store::ItemStore* store);

  // Index and Delete: see Engine::Index and Engine::Delete. REQUIRES: not refused.
  absl::StatusOr<WriteResult> Index(LiveCollection& collection, std::vector<IndexItem> items,
                                    const CallOptions& call,
                                    const std::optional<NearDuplicateCheck>& near_duplicate);
  absl::StatusOr<WriteResult> Delete(LiveCollection& collection,
                                     const std::vector<std::string>& ids, const CallOptions& call);

 private:
  // AwaitApplied catches the collection up (in this thread, or waiting for the thread that is)
  // until `position` is applied: OK, or UNAVAILABLE naming the reason at the ack deadline.
  // OK at once for a collection this process holds no index of (a frontend's: the commit is
  // the acknowledgement).
  absl::Status AwaitApplied(LiveCollection& collection, int64_t position, absl::Time deadline);
  // FindUnchanged returns, sorted, the candidates whose stored content hash equals theirs, puts
  // each one's stored caption in its result, and raises *position to their stored versions'.
  absl::StatusOr<std::vector<size_t>> FindUnchanged(const std::string& collection,
                                                    const std::vector<IndexItem>& items,
                                                    const std::vector<uint64_t>& hashes,
                                                    const std::vector<size_t>& candidates,
                                                    std::vector<ItemResult>& results,
                                                    int64_t* position);
  // FindNearDuplicates: for each of `good` still OK, in order, the nearest other item of the
  // image index or of the earlier items kept; at or above the threshold it is named in the
  // item's result and, with skip, the item fails ALREADY_EXISTS (so it is not stored). With a
  // `scope` (the caller's; null: none) only items passing it are compared: a tenant is never
  // told of another's item.
  void FindNearDuplicates(const LiveCollection& collection, const NearDuplicateCheck& check,
                          const std::vector<IndexItem>& items, const std::vector<size_t>& good,
                          const std::vector<store::StoredItem>& stored,
                          std::vector<ItemResult>& results, const ModelCall& call,
                          const filter::Filter* scope);

  // KeepOwnIds returns the candidates whose id is absent or holds an item passing `scope`; each
  // other one's result becomes ALREADY_EXISTS (a scoped caller never overwrites an item it
  // cannot see). A first check, so a taken id costs no model time; the store's write checks
  // again (ItemStore::PutItemsChecked), since another caller may take an id in between.
  absl::StatusOr<std::vector<size_t>> KeepOwnIds(const std::string& collection,
                                                 const filter::Filter& scope,
                                                 const std::vector<IndexItem>& items,
                                                 const std::vector<size_t>& candidates,
                                                 std::vector<ItemResult>& results);

  const Options options_;
  Batchers* const batchers_;
  SpaceSearcher* const spaces_;
  store::ItemStore* const store_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_INGEST_H_
