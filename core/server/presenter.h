// How one API shows a job's outputs: a whole JSON body, or stream frames (SSE for
// OpenAI and TGI, NUL-delimited JSON for vLLM's /generate). Presenters are pure:
// they read a JobResult (with the latest message already applied) and return bytes.
#pragma once

#include "core/server/api_error.h"
#include "core/server/job_result.h"

#include <string>

namespace banyan::core::server {

class Presenter {
 public:
  virtual ~Presenter() = default;
  virtual ErrorShape error_shape() const { return ErrorShape::openai; }
  virtual std::string stream_content_type() const { return "text/event-stream"; }
  /// Frames sent before any output.
  virtual std::string stream_begin(const JobResult&) { return {}; }
  /// Frames for one engine message of prompt `prompt` (already applied to `result`).
  virtual std::string stream_update(const JobResult& result, size_t prompt,
                                    const RequestOutput& out) = 0;
  /// Frames after the last message.
  virtual std::string stream_end(const JobResult& result) = 0;
  /// A frame that reports an error in the middle of a stream.
  virtual std::string stream_error(const ApiError& e);
  /// The whole response body of a non-streaming request.
  virtual std::string full_body(const JobResult& result) = 0;
};

/// "data: <text>\n\n".
std::string sse_frame(const std::string& data);

}  // namespace banyan::core::server
