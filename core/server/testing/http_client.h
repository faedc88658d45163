// A small blocking HTTP/1.1 client for the server's socket tests: whole requests
// through Beast, and raw byte exchanges for hostile inputs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace banyan::core::server::testing {

struct Response {
  int status = 0;  ///< 0: no response (connection closed or timed out)
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;
};

/// One request on a fresh connection. `headers` as {name, value} pairs.
Response http_request(uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = "",
                      const std::vector<std::pair<std::string, std::string>>& headers = {},
                      double timeout_s = 30);

/// Sends raw bytes (optionally half-closing), then reads until the server closes or
/// `timeout_s` passes. Returns every byte received.
std::string raw_exchange(uint16_t port, const std::string& bytes, bool half_close = false,
                         double timeout_s = 5);

/// Parses the status code of the first response in raw bytes (0 when none).
int raw_status(const std::string& raw);
/// The body of the first response in raw bytes (Content-Length or chunked).
std::string raw_body(const std::string& raw);

/// An open connection for step-by-step tests (slow clients, disconnects).
class Connection {
 public:
  explicit Connection(uint16_t port);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  bool send(const std::string& bytes);
  /// Reads what is available within timeout_s (may be empty); appends to `into`.
  /// Returns false when the peer closed.
  bool read_some(std::string& into, double timeout_s);
  void half_close();
  void close();  ///< abortive close (RST) when linger is set
  void set_linger_reset();

 private:
  int fd_ = -1;
};

}  // namespace banyan::core::server::testing
