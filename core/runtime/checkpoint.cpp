#include "core/runtime/checkpoint.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

namespace banyan::core {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(Code::not_found, "cannot read " + path.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
}

}  // namespace

Checkpoint::Checkpoint(const fs::path& dir) : dir_(dir) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    json index = read_json(index_path);
    auto wm = index.find("weight_map");
    if (!index.is_object() || wm == index.end() || !wm->is_object())
      throw Error(index_path.string() + ": missing \"weight_map\" object");
    std::set<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string())
        throw Error(index_path.string() + ": weight_map[\"" + it.key() + "\"] is not a file name");
      const std::string file = it->get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos ||
          file.find('\\') != std::string::npos || file == "." || file == "..")
        throw Error(index_path.string() + ": weight_map[\"" + it.key() +
                    "\"] names \"" + file + "\", which is not a file of this directory");
      shards.insert(file);
    }
    if (shards.empty()) throw Error(index_path.string() + ": weight_map is empty");
    for (const auto& s : shards) add_file(dir / s);
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      auto found = index_.find(it.key());
      const fs::path expected = dir / it->get<std::string>();
      if (found == index_.end())
        throw Error(Code::not_found, index_path.string() + ": tensor \"" + it.key() +
                                         "\" is listed in " + expected.filename().string() +
                                         " but that file does not contain it");
      if (files_[found->second.file]->path() != expected)
        throw Error(index_path.string() + ": tensor \"" + it.key() + "\" is listed in " +
                    expected.filename().string() + " but found in " +
                    files_[found->second.file]->path().filename().string());
    }
  } else if (fs::exists(single)) {
    add_file(single);
  } else {
    throw Error(Code::not_found, dir.string() +
                                     ": no model.safetensors or model.safetensors.index.json");
  }
}

void Checkpoint::add_file(const fs::path& path) {
  files_.push_back(std::make_unique<SafetensorsFile>(path));
  const size_t idx = files_.size() - 1;
  for (const auto& t : files_.back()->tensors()) {
    auto [it, inserted] = index_.emplace(t.name, Where{idx, &t});
    if (!inserted)
      throw Error(path.string() + ": tensor \"" + t.name + "\" is also in " +
                  files_[it->second.file]->path().string());
  }
}

const SafetensorsTensor* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : it->second.tensor;
}

const SafetensorsTensor& Checkpoint::get(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw Error(Code::not_found,
              "checkpoint " + dir_.string() + " has no tensor \"" + std::string(name) + "\"");
}

const fs::path& Checkpoint::file_of(std::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) return dir_;
  return files_[it->second.file]->path();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [k, v] : index_) out.push_back(k);
  return out;
}

uint64_t Checkpoint::data_bytes() const {
  uint64_t n = 0;
  for (const auto& [k, v] : index_) n += v.tensor->nbytes();
  return n;
}

}  // namespace banyan::core
