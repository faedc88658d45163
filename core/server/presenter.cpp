#include "core/server/presenter.h"

namespace banyan::core::server {

std::string sse_frame(const std::string& data) {
  std::string s;
  s.reserve(data.size() + 8);
  s += "data: ";
  s += data;
  s += "\n\n";
  return s;
}

std::string Presenter::stream_error(const ApiError& e) {
  return sse_frame(e.body(error_shape()));
}

}  // namespace banyan::core::server
