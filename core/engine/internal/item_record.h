// item_record.h — a stored item as the engine answers it (Get, List): store::StoredItem to
// ItemRecord, in one place.
//
// Thread-safety: a pure function.
//
//   page.items.push_back(ToRecord(std::move(stored)));
#ifndef RETRACE_CORE_ENGINE_INTERNAL_ITEM_RECORD_H_
#define RETRACE_CORE_ENGINE_INTERNAL_ITEM_RECORD_H_

#include <utility>

#include "core/engine/engine_types.h"
#include "core/store/item_store.h"

namespace retrace::engine::internal {

// ToRecord moves everything a read returns (id, caption, attributes, times, the embeddings it
// read) out of `s`; the thumbnail is read apart (ItemStore::GetThumbnails).
inline ItemRecord ToRecord(store::StoredItem s) {
  ItemRecord item;
  item.id = std::move(s.id);
  item.caption = std::move(s.caption);
  item.attributes = std::move(s.attributes);
  item.clip_image = std::move(s.clip_image);
  item.caption_text = std::move(s.caption_text);
  item.image_features = std::move(s.image_features);
  item.created_ms = s.created_ms;
  item.updated_ms = s.updated_ms;
  return item;
}

}  // namespace retrace::engine::internal

#endif  // RETRACE_CORE_ENGINE_INTERNAL_ITEM_RECORD_H_
