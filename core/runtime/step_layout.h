// From the engine's ForwardBatch (host) to the StepLayout the ops read (device):
// validation of every index the kernels will follow, then one upload.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/forward_batch.h"

#include <vector>

namespace banyan::core {

class StepArena;

/// Limits a batch is checked against.
struct StepLimits {
  int64_t num_blocks = 0;   ///< KV cache blocks
  int32_t block_size = 16;
  int32_t vocab_size = 0;
};

/// Throws banyan::Error(invalid_argument) naming the sequence / token and the
/// offending value when the batch is inconsistent: sizes, contiguous query ranges,
/// context lengths, block ids, slot mapping (each new token's slot must be the one
/// its block table gives for its index), token ids and logits rows.
void validate_batch(const ForwardBatch& batch, const StepLimits& limits);

/// Packs the batch into `staging` (reused across steps to avoid allocation) and
/// uploads it into arena memory in one copy.
StepLayout upload_layout(const ForwardBatch& batch, Backend& backend, StepArena& arena,
                         std::vector<int32_t>& staging);

}  // namespace banyan::core
