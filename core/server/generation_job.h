// A generation that a route asks for, before it reaches the engine: one engine
// request per prompt, all with the same parameters and adapter.
#pragma once

#include "core/engine/request.h"

#include <string>
#include <vector>

namespace banyan::core::server {

struct PromptInput {
  std::vector<int32_t> ids;
  std::string text;  ///< the prompt as text (decoded when it came as token ids)
};

struct GenerationJob {
  std::string id;                   ///< response id, e.g. "cmpl-..."; engine ids add "-<i>"
  std::string model;                ///< the name echoed in responses
  std::string adapter;              ///< "" for the base model
  std::vector<PromptInput> prompts;
  SamplingParams params;
  bool stream = false;
};

}  // namespace banyan::core::server
