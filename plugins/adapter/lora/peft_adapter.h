// One PEFT adapter directory, read and checked against the base model: the
// config's rules (peft_config.h) decide which modules it adapts and with what
// scaling; adapter_model.safetensors must hold exactly those modules' lora_A /
// lora_B (and, for DoRA, lora_magnitude_vector) with shapes that fit the base.
#pragma once

#include "peft_config.h"
#include "st_file.h"

#include <banyan/abi.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace banyan::lora {

class PeftAdapter {
 public:
  /// Throws banyan::Error naming the directory, file, key or module.
  PeftAdapter(const std::filesystem::path& dir, const BanyanBaseModelInfo& base);

  const BanyanAdapterInfo& info() const { return info_; }

 private:
  PeftConfig config_;
  std::unique_ptr<StFile> file_;
  std::vector<std::string> names_;  // owns the module names the C structs point to
  std::vector<BanyanAdapterModule> modules_;
  std::string summary_;
  BanyanAdapterInfo info_{};
};

}  // namespace banyan::lora
