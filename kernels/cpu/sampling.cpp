// The CPU sampling op: banyan::logits::sample_row (the reference semantics every
// backend's op follows) on each row, rows spread over the OpenMP team.
#include "kernels/cpu/kernels.h"

#include <banyan/logits.h>

#include <omp.h>

#include <vector>

namespace banyan::kernels::cpu {

size_t sample(const float* logits, int64_t V, const BanyanSampleRow* rows, int64_t num_rows,
              const BanyanLogitEdit* edits, BanyanSampleResult* out) {
  size_t bytes = 0;
  for (int64_t i = 0; i < num_rows; ++i)
    bytes += sizeof(int32_t) * 2 + sizeof(float) +
             static_cast<size_t>(rows[i].num_logprobs) * (sizeof(int32_t) + sizeof(float));
  // A row costs a few passes over V; below a handful of rows the team's wake-up
  // costs more than it saves.
#pragma omp parallel if (num_rows * V >= 4 * kParallelMin)
  {
    std::vector<float> work, logp;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_rows; ++i) {
      const BanyanSampleRow& r = rows[i];
      logits::sample_row({logits + static_cast<int64_t>(r.logits_row) * V, static_cast<size_t>(V)}, r,
                         {edits + r.first_edit, static_cast<size_t>(r.num_edits)}, work, logp, out[i]);
    }
  }
  return bytes;
}

}  // namespace banyan::kernels::cpu
